# The pipeline's image: `velourcity` installed from its wheels (no dev tools, no source tree).
# Build stage: the SDK's and the server's wheels (setup.py copies schemas/ into the server's).
FROM python:3.11-slim AS wheels
WORKDIR /src
COPY sdk/python ./sdk/python
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY pipeline ./pipeline
COPY schemas ./schemas
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ./sdk/python .

FROM python:3.11-slim
COPY --from=wheels /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /tmp
USER nobody
ENTRYPOINT ["velourcity"]
CMD ["worker"]
