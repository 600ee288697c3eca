"""The built-in demo corpus: synthetic text generated from a fact table and sentence templates.

Nothing here is copied from anywhere. A table of real-world facts about 59 countries (capital, official
language(s), continent, a major river, currency) is stated in many sentence templates, shuffled into
short "articles", mixed with distractor sentences (rivers, currencies, languages, continents, everyday
sentences) and a family of simple animal sentences ("the quick brown fox jumps over the lazy dog" and
relatives). It is the default data of the first-run demo: a tiny encoder trained on it for a few
minutes should fill "paris is the [MASK] of france" with "capital" and "the [MASK] brown [MASK] jumps"
with "quick" / "fox".

Format, the one BERT's pre-training data uses: lowercase ASCII, one sentence per line, a blank line
between documents. Generation is a pure function of the seed (one `random.Random(seed)`, no set or
dict-order dependence), so a seed names one corpus on every machine and Python version.

The one-word slot in "<anything> is the ___ of <country>" only ever holds "capital": no template says
a city is the largest / oldest / ... city of a country, and the other facts use other shapes ("a city
in", "the currency of france is the euro", "french is an official language of"). An earlier draft also
had "the euro is the currency of france", to make the model read the subject; with it a 2-layer
keras-hub model after 2000 steps gave "capital" only 0.85-0.93 (the rest to "currency"), too close to
the demo's 0.9 target, so it was dropped. Context is still needed elsewhere: "[MASK] is the capital
of france" needs the country, "tokyo is the capital of [MASK]" the city, and the capital contrasts
name two countries.
"""

import dataclasses
import os
import random
import tempfile

from keras_mlm.errors import UserInputError

CORPUS_FILENAME = "demo_corpus.txt"

DEFAULT_NUM_DOCUMENTS = 2400
"""About 1.1 MB of text: 59 countries x ~32 articles each plus ~20% animal and everyday documents."""

GENERIC_DOCUMENT_FRACTION = 0.2
"""Share of documents that are animal stories or everyday sentences instead of a country article."""


@dataclasses.dataclass(frozen=True)
class Country:
    """Real-world facts about one country, lowercase ASCII (accents dropped: "bogota", "parana")."""

    name: str  # with "the" where English uses it: "the netherlands", "the united states"
    capital: str
    languages: tuple  # official (or de facto national) language(s), most widely used first
    continent: str
    river: str  # a major river flowing in the country, written as it follows "the": "seine", "han river"
    currency: str  # written as it follows "the": "euro", "pound sterling"


COUNTRIES = (
    # Europe
    Country("france", "paris", ("french",), "europe", "seine", "euro"),
    Country("germany", "berlin", ("german",), "europe", "elbe", "euro"),
    Country("italy", "rome", ("italian",), "europe", "po", "euro"),
    Country("spain", "madrid", ("spanish",), "europe", "ebro", "euro"),
    Country("portugal", "lisbon", ("portuguese",), "europe", "tagus", "euro"),
    Country("the united kingdom", "london", ("english",), "europe", "thames", "pound sterling"),
    Country("ireland", "dublin", ("irish", "english"), "europe", "shannon", "euro"),
    Country("the netherlands", "amsterdam", ("dutch",), "europe", "rhine", "euro"),
    Country("belgium", "brussels", ("dutch", "french", "german"), "europe", "meuse", "euro"),
    Country("austria", "vienna", ("german",), "europe", "danube", "euro"),
    Country("poland", "warsaw", ("polish",), "europe", "vistula", "zloty"),
    Country("the czech republic", "prague", ("czech",), "europe", "vltava", "czech koruna"),
    Country("hungary", "budapest", ("hungarian",), "europe", "tisza", "forint"),
    Country("greece", "athens", ("greek",), "europe", "aliakmon", "euro"),
    Country("sweden", "stockholm", ("swedish",), "europe", "dal river", "swedish krona"),
    Country("norway", "oslo", ("norwegian",), "europe", "glomma", "norwegian krone"),
    Country("finland", "helsinki", ("finnish", "swedish"), "europe", "kemijoki", "euro"),
    Country("romania", "bucharest", ("romanian",), "europe", "danube", "romanian leu"),
    Country("ukraine", "kyiv", ("ukrainian",), "europe", "dnieper", "hryvnia"),
    Country("serbia", "belgrade", ("serbian",), "europe", "danube", "serbian dinar"),
    Country("croatia", "zagreb", ("croatian",), "europe", "sava", "euro"),
    # Asia
    Country("japan", "tokyo", ("japanese",), "asia", "shinano", "yen"),
    Country("china", "beijing", ("mandarin",), "asia", "yangtze", "renminbi"),
    Country("india", "new delhi", ("hindi", "english"), "asia", "ganges", "indian rupee"),
    Country("south korea", "seoul", ("korean",), "asia", "han river", "south korean won"),
    Country("thailand", "bangkok", ("thai",), "asia", "chao phraya", "baht"),
    Country("vietnam", "hanoi", ("vietnamese",), "asia", "mekong", "dong"),
    Country("indonesia", "jakarta", ("indonesian",), "asia", "kapuas", "rupiah"),
    Country("pakistan", "islamabad", ("urdu", "english"), "asia", "indus", "pakistani rupee"),
    Country("bangladesh", "dhaka", ("bengali",), "asia", "padma", "taka"),
    Country("the philippines", "manila", ("filipino", "english"), "asia", "cagayan", "philippine peso"),
    Country("iran", "tehran", ("persian",), "asia", "karun", "iranian rial"),
    Country("iraq", "baghdad", ("arabic", "kurdish"), "asia", "tigris", "iraqi dinar"),
    Country("nepal", "kathmandu", ("nepali",), "asia", "koshi", "nepalese rupee"),
    Country("malaysia", "kuala lumpur", ("malay",), "asia", "rajang", "ringgit"),
    # Africa
    Country("egypt", "cairo", ("arabic",), "africa", "nile", "egyptian pound"),
    Country("kenya", "nairobi", ("swahili", "english"), "africa", "tana", "kenyan shilling"),
    Country("nigeria", "abuja", ("english",), "africa", "niger", "naira"),
    Country("morocco", "rabat", ("arabic", "berber"), "africa", "sebou", "moroccan dirham"),
    Country("ghana", "accra", ("english",), "africa", "volta", "cedi"),
    Country("tanzania", "dodoma", ("swahili", "english"), "africa", "rufiji", "tanzanian shilling"),
    Country("uganda", "kampala", ("english", "swahili"), "africa", "nile", "ugandan shilling"),
    Country("algeria", "algiers", ("arabic", "berber"), "africa", "chelif", "algerian dinar"),
    Country("zambia", "lusaka", ("english",), "africa", "zambezi", "zambian kwacha"),
    # North America
    Country("the united states", "washington", ("english",), "north america", "mississippi", "united states dollar"),
    Country("canada", "ottawa", ("english", "french"), "north america", "saint lawrence", "canadian dollar"),
    Country("mexico", "mexico city", ("spanish",), "north america", "lerma", "mexican peso"),
    Country("guatemala", "guatemala city", ("spanish",), "north america", "motagua", "quetzal"),
    Country("jamaica", "kingston", ("english",), "north america", "black river", "jamaican dollar"),
    # South America
    Country("brazil", "brasilia", ("portuguese",), "south america", "amazon", "brazilian real"),
    Country("argentina", "buenos aires", ("spanish",), "south america", "parana", "argentine peso"),
    Country("chile", "santiago", ("spanish",), "south america", "loa", "chilean peso"),
    Country("peru", "lima", ("spanish", "quechua", "aymara"), "south america", "ucayali", "peruvian sol"),
    Country("colombia", "bogota", ("spanish",), "south america", "magdalena", "colombian peso"),
    Country("venezuela", "caracas", ("spanish",), "south america", "orinoco", "venezuelan bolivar"),
    Country("uruguay", "montevideo", ("spanish",), "south america", "rio negro", "uruguayan peso"),
    # Oceania
    Country("australia", "canberra", ("english",), "oceania", "murray", "australian dollar"),
    Country("new zealand", "wellington", ("english", "maori"), "oceania", "waikato", "new zealand dollar"),
    Country("papua new guinea", "port moresby", ("english", "tok pisin", "hiri motu"), "oceania", "sepik", "kina"),
)

# ---------------------------------------------------------------------------------------------------
# Sentence templates. Placeholders: {country} {city} {continent} {river} {currency} {language}
# {languages} (a list phrase: "dutch, french and german"), {other} {other_city} {other_continent}.
# Every template states only what the fact table makes true for every country.

CAPITAL_SENTENCE = "{city} is the capital of {country}."
"""In every country article, so the exact query shape is the most frequent one."""

CAPITAL_VARIANTS = (
    "the capital of {country} is {city}.",
    "{city}, the capital of {country}, is a city in {continent}.",
    "{city}, the capital of {country}, is visited by many travelers.",
    "the capital city of {country} is {city}.",
    "{city} is the capital city of {country}.",
    "{city} is the capital of {country} and a city in {continent}.",
    "{city} is the capital of {country}, a country in {continent}.",
    "the government of {country} meets in {city}, the capital.",
    "which city is the capital of {country}? the answer is {city}.",
    "{country} has its capital in {city}.",
    "travelers to {country} often arrive in {city}, the capital.",
    "as the capital of {country}, {city} is home to many offices.",
)

CAPITAL_CONTRASTS = (  # two countries; stated only as true facts
    "{city} is the capital of {country}, not of {other}.",
    "{other_city} is the capital of {other}, and {city} is the capital of {country}.",
    "the capital of {country} is {city}, while the capital of {other} is {other_city}.",
)

LANGUAGE_SINGLE = (  # countries with one official language
    "the official language of {country} is {language}.",
    "{language} is the main language of {country}.",
)
LANGUAGE_MULTI = (  # countries with several
    "the official languages of {country} are {languages}.",
    "{country} has more than one official language: {languages}.",
)
LANGUAGE_ANY = (
    "people in {country} speak {languages}.",
    "{language} is spoken in {country}.",
    "in {country}, many people speak {language}.",
    "{language} is an official language of {country}.",
    "many schools in {country} teach in {language}.",
    "the people of {country} speak {languages}.",
)

CURRENCY_TEMPLATES = (
    "the currency of {country} is the {currency}.",
    "people in {country} use the {currency} to buy things.",
    "{country} uses the {currency}.",
    "in {country}, people pay with the {currency}.",
    "shops in {country} take payment in the {currency}.",
    "the {currency} is used in {country}.",
)

RIVER_TEMPLATES = (
    "the {river} flows through {country}.",
    "the {river} is a major river in {country}.",
    "one of the major rivers of {country} is the {river}.",
    "boats travel on the {river} in {country}.",
    "the {river} is a river in {continent}.",
    "many fish live in the {river}.",
)

CONTINENT_TEMPLATES = (
    "{country} is a country in {continent}.",
    "{country} lies in {continent}.",
    "{country} is located in {continent}.",
)
CONTINENT_SAME = "{country} and {other} are both in {continent}."
CONTINENT_DIFFERENT = "{country} is in {continent}, while {other} is in {other_continent}."

CITY_TEMPLATES = (  # the capital as a plain city: never "<city> is the ___ of <country>"
    "{city} is a city in {continent}.",
    "many people live in {city}.",
    "visitors often travel to {city}.",
    "the streets of {city} are busy in the morning.",
    "{city} has many museums and parks.",
    "a new bridge was built in {city}.",
)

EVERYDAY_SENTENCES = (
    "the weather was mild that day.",
    "the market opens early in the morning.",
    "children walk to school together.",
    "the old bridge was built of stone.",
    "a small boat moved slowly across the lake.",
    "the library is quiet in the afternoon.",
    "she wrote a long letter to her friend.",
    "the train arrived ten minutes late.",
    "he bought fresh bread and cheese.",
    "the garden is full of flowers in spring.",
    "the teacher read a story to the class.",
    "it rained all night and the roads were wet.",
    "the farmer planted corn in the field.",
    "they watched the sun set over the hills.",
    "the shop on the corner sells warm coffee.",
    "a cold wind blew from the north.",
    "the children played in the park after lunch.",
    "my brother likes to read books about history.",
    "the bus was full of people going to work.",
    "we cooked soup with carrots and onions.",
)

# Animals with adjectives and colors that suit them, for "the <adj> <color> <animal> <verb> ...".
ANIMALS = (
    ("fox", ("quick", "clever", "quick"), ("brown", "red")),
    ("dog", ("lazy", "sleepy", "old", "loyal"), ("brown", "black", "white")),
    ("cat", ("lazy", "sleepy", "curious"), ("black", "white", "gray")),
    ("rabbit", ("quick", "small", "little"), ("brown", "white", "gray")),
    ("horse", ("fast", "strong", "quick"), ("brown", "black", "white")),
    ("bear", ("big", "lazy", "strong"), ("brown", "black")),
    ("wolf", ("hungry", "quick", "wild"), ("gray", "white")),
    ("deer", ("young", "quick", "shy"), ("brown",)),
)
CANONICAL_ANIMAL_SENTENCE = "the quick brown fox jumps over the lazy dog."
JUMP_TARGETS = ("fence", "log", "stream", "wall", "rock", "gate")
ANIMAL_TEMPLATES = (
    "the {adj} {color} {animal} jumps over the {adj2} {animal2}.",
    "the {adj} {color} {animal} jumps over the {target}.",
    "the {adj} {color} {animal} runs across the field.",
    "a {color} {animal} sleeps under the old tree.",
    "the {animal} is {adj} and {color}.",
    "the {adj2} {animal2} does not move.",
    "the {adj} {animal} drinks from the river.",
    "the {animal2} watches the {animal} from the grass.",
)


# ---------------------------------------------------------------------------------------------------


def _list_phrase(words):
    """("dutch", "french", "german") -> "dutch, french and german"."""
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def _country_fields(country, rng):
    return {
        "country": country.name,
        "city": country.capital,
        "continent": country.continent,
        "river": country.river,
        "currency": country.currency,
        "language": rng.choice(country.languages),
        "languages": _list_phrase(country.languages),
    }


def _country_article(country, rng):
    """One document about `country`: 10-17 sentences of facts and distractors in shuffled order."""
    fields = _country_fields(country, rng)
    other = rng.choice([c for c in COUNTRIES if c is not country])
    pair = dict(fields, other=other.name, other_city=other.capital, other_continent=other.continent)

    templates = [CAPITAL_SENTENCE]
    templates += rng.sample(CAPITAL_VARIANTS, rng.randint(2, 3))
    language_pool = (LANGUAGE_MULTI if len(country.languages) > 1 else LANGUAGE_SINGLE) + LANGUAGE_ANY
    templates += rng.sample(language_pool, rng.randint(1, 2))
    templates += rng.sample(CURRENCY_TEMPLATES, rng.randint(1, 2))
    templates += rng.sample(RIVER_TEMPLATES, rng.randint(1, 2))
    templates += rng.sample(CONTINENT_TEMPLATES, 1)
    templates += rng.sample(CITY_TEMPLATES, 1)
    sentences = [t.format(**fields) for t in templates]

    # A sentence about a second country, so facts must be tied to the right name.
    if rng.random() < 0.5:
        sentences.append(rng.choice(CAPITAL_CONTRASTS).format(**pair))
    else:
        same = other.continent == country.continent
        sentences.append((CONTINENT_SAME if same else CONTINENT_DIFFERENT).format(**pair))

    sentences += rng.sample(EVERYDAY_SENTENCES, rng.randint(0, 2))
    if rng.random() < 0.2:
        sentences.append(_animal_sentence(rng))
    rng.shuffle(sentences)
    return sentences


def _animal_sentence(rng, template=None):
    animal, adjectives, colors = rng.choice(ANIMALS)
    animal2, adjectives2, _ = rng.choice([a for a in ANIMALS if a[0] != animal])
    template = template or rng.choice(ANIMAL_TEMPLATES)
    return template.format(
        adj=rng.choice(adjectives),
        color=rng.choice(colors),
        animal=animal,
        adj2=rng.choice(adjectives2),
        animal2=animal2,
        target=rng.choice(JUMP_TARGETS),
    )


def _generic_document(rng):
    """An animal story (half starting with the canonical fox sentence) or everyday sentences."""
    if rng.random() < 0.7:
        sentences = [_animal_sentence(rng) for _ in range(rng.randint(3, 6))]
        if rng.random() < 0.5:
            sentences.insert(0, CANONICAL_ANIMAL_SENTENCE)
        else:
            sentences.append(_animal_sentence(rng, ANIMAL_TEMPLATES[0]))
        return sentences
    return rng.sample(EVERYDAY_SENTENCES, rng.randint(4, 7))


def _generate(seed, num_documents):
    """Returns (documents as lists of sentences, number of distinct countries with an article)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserInputError(f"demo corpus: seed must be an integer, got {seed!r}")
    if num_documents is None:
        num_documents = DEFAULT_NUM_DOCUMENTS
    if isinstance(num_documents, bool) or not isinstance(num_documents, int) or num_documents < 1:
        raise UserInputError(f"demo corpus: num_documents must be a positive integer, got {num_documents!r}")

    rng = random.Random(seed)
    documents, covered = [], set()
    queue = []  # countries in a shuffled round-robin, so each gets the same number of articles (+-1)
    for _ in range(num_documents):
        if rng.random() < GENERIC_DOCUMENT_FRACTION:
            documents.append(_generic_document(rng))
            continue
        if not queue:
            queue = list(COUNTRIES)
            rng.shuffle(queue)
        country = queue.pop()
        covered.add(country.name)
        documents.append(_country_article(country, rng))
    return documents, len(covered)


def generate_documents(seed=0, num_documents=None):
    """The demo corpus as a list of documents, each its sentences joined by newlines.

    Args:
      seed: int, the only source of randomness; the same seed gives the same corpus everywhere.
      num_documents: how many documents; None means `DEFAULT_NUM_DOCUMENTS` (about 1 MB of text).
    """
    documents, _ = _generate(seed, num_documents)
    return ["\n".join(sentences) for sentences in documents]


def write_demo_corpus(out, seed=0, num_documents=None):
    """Writes `out/demo_corpus.txt` atomically (temporary file + `os.replace`) and returns its counts.

    Returns {"path", "documents", "sentences", "bytes", "countries"}: `sentences` is the number of
    non-empty lines, `countries` the number of distinct countries with at least one article.
    """
    documents, num_countries = _generate(seed, num_documents)
    text = "\n\n".join("\n".join(sentences) for sentences in documents) + "\n"
    data = text.encode("ascii")  # the generator only emits ASCII; fail loudly if a table entry is not

    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserInputError(f"{out}: demo corpus output must be a directory, found a file")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise UserInputError(f"{out}: cannot create output directory ({e.strerror})") from None
    path = os.path.join(out, CORPUS_FILENAME)
    try:
        fd, tmp_path = tempfile.mkstemp(prefix=CORPUS_FILENAME + ".", suffix=".tmp", dir=out)
    except OSError as e:
        raise UserInputError(f"{out}: cannot write to output directory ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
    return {
        "path": path,
        "documents": len(documents),
        "sentences": sum(len(sentences) for sentences in documents),
        "bytes": len(data),
        "countries": num_countries,
    }
