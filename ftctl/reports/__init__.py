"""Reports: JUnit XML, JSON/Markdown, timeline plot."""
