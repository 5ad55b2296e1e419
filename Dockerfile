# ringkv image, built FROM scratch: no base image has to be pulled.
#
# The static binaries and the few files a scratch image lacks (/etc/passwd,
# /etc/group, /etc/nsswitch.conf, /tmp) are staged on the host under
# bin/docker/ by scripts/docker-build.sh (`make docker-image`), which then
# runs `docker build`. Building this file directly without that step fails
# on the first COPY.
#
# The image runs kvnode as the unprivileged user ringkv (65532:65532); its
# data lives under /var/lib/ringkv (a volume), owned by that user, so a
# fresh named volume inherits the ownership. kvctl is in the image too:
#   docker run --rm ringkv:dev --help
#   docker exec <container> kvctl cluster status
FROM scratch

COPY bin/docker/rootfs/ /
COPY --chown=65532:65532 bin/docker/data/ /var/lib/ringkv/

ENV PATH=/usr/local/bin \
    KVCTL_ENDPOINTS=127.0.0.1:7001
USER 65532:65532
WORKDIR /var/lib/ringkv
VOLUME ["/var/lib/ringkv"]
EXPOSE 7001

# Healthy when the node on $KVCTL_ENDPOINTS (this container's own node) answers
# a cluster status request: kvctl fetches the shard map from its endpoints
# first, so a node that does not answer fails the check. The image has no
# shell, hence the exec form.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/kvctl", "--timeout", "3s", "cluster", "status"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/kvnode"]
# Override with the node's flags (see docker-compose.yml); --help lists them.
CMD ["--help"]
