# The resource server as an image, for the `scale` profile of docker-compose.yml.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p resource-server --bin resource-server

FROM debian:bookworm-slim
COPY --from=build /src/target/release/resource-server /usr/local/bin/resource-server
USER 65534
ENTRYPOINT ["resource-server"]
