"""The predict stage: backends (hf, openai-compatible, vllm), SQL extraction, self-consistency."""
