"""The train stage: supervised fine-tuning (full | lora | qlora on one code path); merging lives in models.merge."""
