"""The package's version, in a module of its own.

Modules low in the package (the tracer's instrumentation scope, the OTLP user agent, the HTML
report's generator line) read it from here, so reading the version never imports the package
face or the API behind it. ``pyproject.toml`` reads it from here too.
"""

__version__ = "0.1.0"
