# The worker (`python ai_tagger.py serve`): the analysis engine for a Stash that runs elsewhere,
# e.g. Stash's official (Alpine) image, where ONNX Runtime does not install. See
# docker-compose.example.yaml and README.md ("Stash in Docker, or the analysis on another machine").
#
#   docker build -t stash-ai-tagger-worker .                  # CPU
#   docker build -t stash-ai-tagger-worker:gpu --build-arg GPU=1 .   # NVIDIA GPU (CUDA 12 wheels)
FROM python:3.11-slim-bookworm

ARG GPU=0
WORKDIR /opt/ai_tagger

COPY requirements.txt requirements-nodeps.txt constraints.txt ./
RUN pip install --no-cache-dir -c constraints.txt -r requirements.txt \
 && pip install --no-cache-dir --no-deps -c constraints.txt -r requirements-nodeps.txt \
 && if [ "$GPU" = "1" ]; then \
      pip uninstall -y onnxruntime && pip install --no-cache-dir "onnxruntime-gpu[cuda,cudnn]"; \
    fi

COPY ai_tagger.py ai_tagger.yml config.example.yaml ./
COPY tagger ./tagger
COPY models ./models

# Every setting can also come from AI_TAGGER_<KEY> (the token must: AI_TAGGER_WORKER_TOKEN).
ENV AI_TAGGER_DATA_DIR=/var/lib/ai_tagger \
    AI_TAGGER_WORKER_HOST=0.0.0.0 \
    AI_TAGGER_WORKER_PORT=9977 \
    PYTHONUNBUFFERED=1
VOLUME /var/lib/ai_tagger
EXPOSE 9977
HEALTHCHECK --interval=30s --timeout=5s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9977/health', timeout=4)"
CMD ["python", "ai_tagger.py", "serve"]
