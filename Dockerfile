# The image docker-compose.yml builds: Watchkeeper and its dependencies, nothing else.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY stream ./stream
COPY alerts ./alerts
COPY migrations ./migrations
COPY sim ./sim
COPY services ./services
COPY watchkeeper ./watchkeeper
RUN pip install --no-cache-dir . && useradd --create-home watchkeeper
USER watchkeeper
ENTRYPOINT []
CMD ["watchkeeper", "--help"]
