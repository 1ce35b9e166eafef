"""Schema linking: the tables, columns and values a question needs, found before the model sees the prompt
(:mod:`.link`), the value index behind it (:mod:`.values`) and how well a filtered schema serves a query
(:mod:`.metrics`). Part of the shared layer: the one prompt builder calls it."""
