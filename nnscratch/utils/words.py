"""Numbers in messages: "1 epoch", "7 epochs", "6 batches"."""


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun, in the plural (``plural``, or the noun + "s") unless n is 1."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
