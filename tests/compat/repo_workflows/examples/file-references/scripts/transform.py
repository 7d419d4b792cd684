"""Transform input text to uppercase."""

text: str = "${input}"
result: str = text.upper()
