# The image of a cluster load's Job pods (`load.placement: cluster`, `load.image`): Python 3.11+
# with ftctl installed, `python3` on PATH. Build from the repository root:
#   docker build -f docker/cluster-client.Dockerfile -t REGISTRY/ftctl-cluster-client:0.1.0 .
#   docker push REGISTRY/ftctl-cluster-client:0.1.0
# To reuse an image the cluster already pulls, start FROM the Dynamo runtime image instead (it
# has Python 3.12): FROM nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1
FROM python:3.12-slim
COPY pyproject.toml README.md /src/
COPY ftctl /src/ftctl
RUN pip install --no-cache-dir /src && rm -rf /src
# The Job sets the command (python3 -m ftctl cluster-worker) and the config in its env.
USER 65534
