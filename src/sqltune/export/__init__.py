"""The export stage: a run or model -> a checked GGUF file for llama.cpp (:mod:`.gguf`)."""
