"""The whole configuration of a pre-training run, as read from YAML/JSON and flags and saved in RUN_DIR.

    architecture: bert          # bert, roberta, albert, modern, electra or xlnet (default bert): the config class and model
    preset: tiny                # a key of that config class's presets() (default tiny)
    model: {dropout: 0.1}       # fields of that config class overriding the preset
    data: {seq_len: 128}        # DataConfig fields (used when raw text is prepared on the fly)
    masking: {selection_rate: 0.15, strategy: token}     # MaskingConfig fields
    training: {steps: 1000, batch_size: 32}             # TrainingConfig fields

Flags override the file; the resolved result (with the model's full sizes) is saved as config.yaml.
"""

import dataclasses
import json

import yaml

from keras_mlm import fileio
from keras_mlm.data.prepare import DataConfig
from keras_mlm.errors import UserInputError
from keras_mlm.masking import MaskingConfig
from keras_mlm.models import AlbertConfig, ElectraConfig, EncoderConfig, ModernConfig, RobertaConfig, XLNetConfig
from keras_mlm.training.config import TrainingConfig

SECTIONS = {"data": DataConfig, "masking": MaskingConfig, "training": TrainingConfig}
DEFAULT_PRESET = "tiny"
DEFAULT_ARCHITECTURE = "modern"  # chosen by benchmarks/bench_quality.py (README: "The default recipe")
LEGACY_ARCHITECTURE = "bert"  # what a run folder that names no architecture holds (written before architectures existed)
ARCHITECTURES = {
    "bert": EncoderConfig,
    "roberta": RobertaConfig,
    "albert": AlbertConfig,
    "modern": ModernConfig,
    "electra": ElectraConfig,
    "xlnet": XLNetConfig,
}
"""Architecture name -> its config class (fields = the `model` keys, `presets()` = the preset names,
optional `TRAINING_DEFAULTS` / `MASKING_DEFAULTS` = training / masking fields it defaults differently
(RoBERTa's optimizer, XLNet's 1/6 targets kept as they are), `VOCABULARY_KINDS` = the
vocabulary kinds it accepts, `OBJECTIVES` = the objectives it trains with)."""
OBJECTIVES = {"bert": ("mlm", "mlm+nsp"), "albert": ("mlm", "mlm+sop")}
"""The objectives beyond plain "mlm" an architecture offers (every other architecture: "mlm" only)."""


def objectives_of(architecture):
    return OBJECTIVES.get(architecture or DEFAULT_ARCHITECTURE, ("mlm",))


def vocabulary_kinds_of(architecture):
    return getattr(config_class(architecture), "VOCABULARY_KINDS", ("wordpiece", "bpe", "sentencepiece"))


def config_class(architecture, source="config"):
    """The config class of `architecture` (None: bert); an unknown name is a UserInputError."""
    name = architecture or DEFAULT_ARCHITECTURE
    if name not in ARCHITECTURES:
        raise UserInputError(f"{source}: unknown architecture {name!r} (allowed: {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[name]


@dataclasses.dataclass(frozen=True)
class RunConfig:
    architecture: str | None = None  # None: DEFAULT_ARCHITECTURE (a run continued with --init-from takes its source's)
    preset: str | None = None  # None: "tiny" (a run continued with --init-from takes its source's sizes)
    model: dict = dataclasses.field(default_factory=dict)
    data: DataConfig = DataConfig()
    masking: MaskingConfig | None = None  # None: the architecture's (MASKING_DEFAULTS over MaskingConfig's), as the CLI's
    training: TrainingConfig | None = None  # None: the architecture's (TRAINING_DEFAULTS over TrainingConfig's)
    given: frozenset | None = dataclasses.field(default=None, compare=False, repr=False)
    """The (section, key) pairs a config file or flag set (build_run_config passes them). Made in code
    (None here), a field of a section passed in counts as given when it differs from its dataclass
    default (see `_keys_set_in_code`). A run continued with --init-from from a config that names no
    architecture takes its source architecture's defaults for the rest (see `with_architecture`)."""

    def __post_init__(self):
        defaults = _architecture_defaults(self.architecture)
        given = set()
        for name, cls in (("masking", MaskingConfig), ("training", TrainingConfig)):
            section = getattr(self, name)
            if section is None:
                object.__setattr__(self, name, cls(**defaults[name]))
            elif self.given is None:
                given.update((name, key) for key in _keys_set_in_code(section))
        if self.given is None:
            object.__setattr__(self, "given", frozenset(given))

    @property
    def config_class(self):
        """The architecture's config class (EncoderConfig, AlbertConfig, ModernConfig, ElectraConfig)."""
        return config_class(self.architecture)

    def encoder_config(self, vocabulary_size):
        cls = self.config_class
        overrides = dict(self.model)
        default_positions = {f.name: f.default for f in dataclasses.fields(cls)}["max_sequence_length"]
        overrides.setdefault("max_sequence_length", max(default_positions, self.data.seq_len))
        # A preset's sizes under the `model` overrides; a continued run's `model` names every size, and
        # its preset may be a label of its source (e.g. an imported checkpoint's) rather than a preset name.
        presets = cls.presets()
        base = presets.get(self.preset or DEFAULT_PRESET, {})
        missing = [k for k in presets[DEFAULT_PRESET] if k not in base and k not in overrides]
        if missing:
            raise UserInputError(f"unknown encoder preset {self.preset!r} and no model {', '.join(missing)} given (allowed presets: {', '.join(presets)})")
        return cls(**{**base, "vocabulary_size": vocabulary_size, **overrides})

    def with_architecture(self, architecture):
        """This config for `architecture` when it named none: the masking and training fields it left to
        DEFAULT_ARCHITECTURE's defaults take `architecture`'s instead (e.g. modern's 30% selection becomes
        BERT's 15% for a run continued from a BERT); the fields it was given stay."""
        if self.architecture is not None:
            return dataclasses.replace(self, architecture=architecture)
        ours, theirs = _architecture_defaults(DEFAULT_ARCHITECTURE), _architecture_defaults(architecture)
        sections = {}
        for name in ("masking", "training"):
            section = getattr(self, name)
            given = {key for section_name, key in self.given if section_name == name}
            fallback = _field_defaults(type(section))
            changes = {key: theirs[name].get(key, fallback[key]) for key in set(ours[name]) | set(theirs[name]) if key not in given}
            sections[name] = _rebuilt(section, changes, given)
        return dataclasses.replace(self, architecture=architecture, **sections)

    def to_dict(self, vocabulary_size=None):
        """The sections as saved; with `vocabulary_size` resolved (the architecture's name and every model field),
        without it as given (architecture and preset None: not given)."""
        architecture = self.architecture if vocabulary_size is None else self.architecture or DEFAULT_ARCHITECTURE
        out = {"architecture": architecture, "preset": self.preset or DEFAULT_PRESET, "model": dict(self.model)}
        if vocabulary_size is not None:
            out["model"] = dataclasses.asdict(self.encoder_config(vocabulary_size))
        for name in SECTIONS:
            out[name] = dataclasses.asdict(getattr(self, name))
        return out


def _check_keys(source, section, values, allowed):
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise UserInputError(f"{source}: unknown key(s) {', '.join(unknown)} in '{section}' (allowed: {', '.join(sorted(allowed))})")


def build_run_config(file_values=None, overrides=None, source="config", default_architecture=None):
    """Merges a config mapping (from a file) with flag overrides ({section: {key: value}}) and validates it.

    `default_architecture`: the architecture when neither names one (a resumed run folder's, or the
    `--init-from` source's), so its defaults and objectives apply; None: DEFAULT_ARCHITECTURE's, with
    the config's architecture left None.
    """
    file_values = dict(file_values or {})
    overrides = overrides or {}
    _check_keys(source, "top level", file_values, ["architecture", "preset", "model", *SECTIONS])
    architecture = overrides.get("architecture") or file_values.get("architecture") or default_architecture
    cls = config_class(architecture, source)
    preset = overrides.get("preset") or file_values.get("preset")  # None: the default (or a continued run's)
    if preset is not None and preset not in cls.presets():
        raise UserInputError(f"{source}: unknown preset {preset!r} (allowed: {', '.join(cls.presets())}; "
                             f"architecture {architecture or DEFAULT_ARCHITECTURE})")
    model = dict(file_values.get("model") or {})
    model.update(overrides.get("model") or {})
    model.pop("vocabulary_size", None)  # always the vocabulary's
    _check_keys(f"{source}: architecture {architecture or DEFAULT_ARCHITECTURE}", "model", model, [f.name for f in dataclasses.fields(cls)])
    architecture_defaults = _architecture_defaults(architecture)  # e.g. RoBERTa's betas, XLNet's targets
    sections, given = {}, set()
    for name, cls in SECTIONS.items():
        values = file_values.get(name) or {}
        if not isinstance(values, dict):
            raise UserInputError(f"{source}: '{name}' must be a mapping")
        flags = {k: v for k, v in (overrides.get(name) or {}).items() if v is not None}
        given.update((name, key) for key in [*values, *flags])
        values = {**architecture_defaults.get(name, {}), **values, **flags}
        _check_keys(source, name, values, [f.name for f in dataclasses.fields(cls)])
        try:
            sections[name] = cls(**values)
        except TypeError as e:
            raise UserInputError(f"{source}: {name}: {e}") from None
    objective = sections["training"].objective
    if objective not in objectives_of(architecture):
        offered = [a for a in ARCHITECTURES if objective in objectives_of(a)]
        raise UserInputError(
            f"{source}: objective {objective!r} is not one of architecture {architecture or DEFAULT_ARCHITECTURE}'s "
            f"({', '.join(objectives_of(architecture))})" + (f"; {objective} is {', '.join(offered)}'s" if offered else "")
        )
    return RunConfig(architecture=architecture, preset=preset, model=model, given=frozenset(given), **sections)


def _rebuilt(section, changes, given):
    """`section` with `changes`, built again so that the fields its class derives (default None, e.g.
    MaskingConfig.keep_rate from the other rates) are derived from the new values unless they were given."""
    cls = type(section)
    drop = {key for key, default in _field_defaults(cls).items() if default is None and key not in changes and key not in given}
    return cls(**{**{k: v for k, v in dataclasses.asdict(section).items() if k not in drop}, **changes})


def _keys_set_in_code(section):
    """The fields of a section made in code that count as given: those that differ from their dataclass
    default, and the derived ones (default None) that differ from what the class derives from the rest."""
    cls = type(section)
    current, defaults = dataclasses.asdict(section), _field_defaults(cls)
    derived = {key for key, default in defaults.items() if default is None}
    keys = {key for key, value in current.items() if key not in derived and value != defaults[key]}
    rederived = cls(**{key: value for key, value in current.items() if key not in derived})
    return keys | {key for key in derived if getattr(rederived, key) != current[key]}


def _field_defaults(cls):
    """Field name -> its default (a default_factory called); every section field has one."""
    return {f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory() for f in dataclasses.fields(cls)}


def _architecture_defaults(architecture):
    """{"training": ..., "masking": ...}: the fields `architecture` defaults differently from the dataclasses."""
    cls = config_class(architecture)
    return {"training": dict(getattr(cls, "TRAINING_DEFAULTS", {})), "masking": dict(getattr(cls, "MASKING_DEFAULTS", {}))}


def load_config_file(path):
    """Reads a YAML or JSON config file into a mapping, with errors naming the file."""
    if not fileio.isfile(path):
        raise UserInputError(f"{path}: config file not found")
    try:
        with fileio.open(path, encoding="utf-8") as f:
            values = json.load(f) if path.endswith(".json") else yaml.safe_load(f)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise UserInputError(f"{path}: not valid {'JSON' if path.endswith('.json') else 'YAML'} ({str(e).splitlines()[0]})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise UserInputError(f"{path}: the top level must be a mapping of sections")
    return values


def save_config(path, run_config, vocabulary_size, extra=None):
    payload = run_config.to_dict(vocabulary_size)
    payload.update(extra or {})

    def save(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            yaml.safe_dump(payload, f, sort_keys=False)

    fileio.atomic_save(save, path)
