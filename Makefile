# sqltune developer tasks. Run inside the virtual environment (. .venv/bin/activate).
.PHONY: install test lint format bench quickstart

install:
	pip install torch==2.13.0
	pip install -e ".[dev]"

test:
	pytest

lint:
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks
	mypy

format:
	ruff format src tests benchmarks
	ruff check --fix src tests benchmarks

bench:
	python benchmarks/data_build.py
	python benchmarks/schema_tokens.py
	python benchmarks/eval_speed.py
	python benchmarks/predict_speed.py
	python benchmarks/train_throughput.py
	python benchmarks/spider_finetune.py

quickstart:
	sqltune quickstart --out runs/quickstart
