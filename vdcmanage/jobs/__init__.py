"""Durable jobs: long work (an import) as steps whose state and progress live in the catalog."""
