# The operator and node-agent image, for those who build with a container engine.
# `make image` builds the same image without one (hack/build_image.py): Debian bookworm's
# Python 3.11, the project's dependencies at the development environment's versions, the
# project's wheel, user 65532, no shell, entrypoint `python3.11 -m polyculture`.
#   docker build -t ghcr.io/polyculture/polyculture:0.1.0 .
FROM docker.io/library/debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3-pip \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python3.11 -m pip install --break-system-packages --no-compile --prefer-binary \
      --target /site . \
 && rm -rf /site/bin

FROM gcr.io/distroless/python3-debian12:nonroot
COPY --from=build /site /usr/local/lib/python3.11/dist-packages
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
WORKDIR /home/nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/bin/python3.11", "-m", "polyculture"]
CMD ["run", "--metrics-port", "8080", "--metrics-address", "0.0.0.0"]
