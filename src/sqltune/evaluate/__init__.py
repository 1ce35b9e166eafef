"""The eval stage: execution accuracy that agrees with the official Spider and BIRD evaluators."""
