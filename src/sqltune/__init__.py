"""sqltune: fine-tune open LLMs for text-to-SQL, and prove it with honest numbers."""

__version__ = "0.1.0"
