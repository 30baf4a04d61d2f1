"""The report as text: a display model built once, then Markdown and terminal formatting."""
