"""The floor for bench/serve.py: a bare FastAPI endpoint returning constant JSON."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/{description:path}")
async def constant(description: str) -> dict[str, str]:
    return {"genre": "Crime"}
