FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir .
WORKDIR /data
ENV WIREHUB_SERVER_HOST=0.0.0.0 WIREHUB_HTTP_HOST=0.0.0.0 WIREHUB_STORE_URL=sqlite:////data/wirehub.db
EXPOSE 8000 8001
CMD ["wirehub", "serve"]
