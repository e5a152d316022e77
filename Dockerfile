# syntax=docker/dockerfile:1
# Build: a static, pure-Go binary (the SQLite driver needs no cgo).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/wxgate/wxgate/internal/app.Version=${VERSION}" \
      -o /out/wxgate ./cmd/wxgate

# Run: distroless static image, non-root user, nothing but the binary and CA roots.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wxgate /usr/local/bin/wxgate
USER nonroot:nonroot
WORKDIR /home/nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/wxgate"]
CMD ["serve"]
