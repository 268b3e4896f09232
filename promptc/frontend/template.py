"""The template syntax lives in `promptc.template` (one module for every stage); the
frontend's modules import it under this name too."""

from promptc.template import TemplateError, escape, placeholders, render, scan

__all__ = ["TemplateError", "escape", "placeholders", "render", "scan"]
