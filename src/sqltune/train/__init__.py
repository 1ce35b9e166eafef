"""The train stage: supervised fine-tuning (full | lora | qlora on one code path) and merging."""
