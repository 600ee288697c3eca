"""CLI verbs of the model: pretrain, fill-mask, evaluate, score, demo."""


def register(verbs):
    pass
