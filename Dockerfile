# Hermes: a static binary on a distroless, non-root base.
# Build: docker build -t hermes .   Run: docker run -p 3000:3000 hermes
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.buildVersion=${VERSION}" -o /out/hermes ./cmd/hermes \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hermes /hermes
# The embedded store, generated key and workspaces live here; mount a volume.
COPY --from=build --chown=65532:65532 /out/data /data
ENV HERMES_DATA_DIR=/data PORT=3000 HERMES_ENV=production
USER 65532:65532
EXPOSE 3000
# No curl in the image: the binary checks itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 CMD ["/hermes", "healthcheck"]
ENTRYPOINT ["/hermes"]
CMD ["serve"]
