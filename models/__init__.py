"""The model files and their cards, installed as package data ``edgefilter.models`` (see pyproject.toml)."""
