"""Renderers of a Result: terminal tables (rich) and Parquet exports. They never change the answer."""
