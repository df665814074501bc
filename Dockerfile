# A warden image with nothing but the binary: built from a static warden made on this
# machine, so no base image is pulled (see the README's "Deploying").
#
#   RUSTFLAGS="-C target-feature=+crt-static" \
#     cargo build --release --locked --target x86_64-unknown-linux-gnu -p warden
#   docker build -t warden:dev .
#
# A static glibc binary cannot resolve host names (no NSS modules in the image): give
# members addresses, as docker-compose.yml does.
FROM scratch
COPY target/x86_64-unknown-linux-gnu/release/warden /warden
# client, peer, HTTP
EXPOSE 7400 7401 7402
VOLUME ["/data"]
ENTRYPOINT ["/warden"]
CMD ["--help"]
