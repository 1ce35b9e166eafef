"""The serve stage: HTTP APIs around sqltune's models."""
