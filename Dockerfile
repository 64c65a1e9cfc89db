# The pipeline's image: `velourcity` with everything it needs (no dev tools).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY schemas ./schemas
RUN pip install --no-cache-dir -e .
USER nobody
ENTRYPOINT ["velourcity"]
CMD ["worker"]
