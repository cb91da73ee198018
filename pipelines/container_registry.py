"""Does an image tag exist? Asked of its registry over the OCI distribution API.

Anonymous pulls only (ghcr.io, Docker Hub and other public registries hand out anonymous
tokens): a private registry answers 401/403, which means "cannot tell", not "missing".
"""

import re
from dataclasses import dataclass

DOCKER_HUB = "registry-1.docker.io"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
TIMEOUT = 10


@dataclass(frozen=True)
class ImageRef:
    """`registry/repository:tag`, with Docker's defaults filled in."""

    registry: str
    repository: str
    tag: str

    @classmethod
    def parse(cls, image: str) -> "ImageRef":
        """`ghcr.io/org/name:tag`, `name:tag` (Docker Hub), `host:5000/name` (tag latest)."""
        name, at, digest = image.partition("@")
        first, slash, rest = name.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            registry, path = first, rest
        else:
            registry, path = DOCKER_HUB, name
            if "/" not in path:
                path = f"library/{path}"
        repository, colon, tag = path.rpartition(":") if ":" in path else (path, "", "latest")
        return cls(registry, repository, digest if at else tag)

    @property
    def base_url(self) -> str:
        """The registry's API root (plain http for a local registry)."""
        local = re.match(r"(localhost|127\.0\.0\.1)(:\d+)?$", self.registry)
        return f"{'http' if local else 'https'}://{self.registry}/v2"


def image_exists(image: str) -> tuple[bool | None, str]:
    """Whether the registry has `image`: True, False, or None (cannot tell), and why."""
    import requests

    ref = ImageRef.parse(image)
    url = f"{ref.base_url}/{ref.repository}/manifests/{ref.tag}"
    headers = {"Accept": MANIFEST_TYPES}
    try:
        response = requests.head(url, headers=headers, timeout=TIMEOUT)
        if response.status_code == 401:
            token = _anonymous_token(response.headers.get("WWW-Authenticate", ""))
            if token:
                headers["Authorization"] = f"Bearer {token}"
                response = requests.head(url, headers=headers, timeout=TIMEOUT)
    except requests.RequestException as err:
        return None, f"cannot reach {ref.registry} ({type(err).__name__})"
    if response.status_code == 200:
        return True, "published"
    if response.status_code == 404:
        return False, f"{ref.registry} has no tag {ref.tag} of {ref.repository}"
    if response.status_code in (401, 403):
        return None, f"{ref.registry} needs credentials to tell (HTTP {response.status_code})"
    return None, f"{ref.registry} answered HTTP {response.status_code}"


def _anonymous_token(challenge: str) -> str:
    """A pull token from a `Bearer realm=...,service=...,scope=...` challenge ('' if none)."""
    import requests

    fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    if not challenge.lower().startswith("bearer") or "realm" not in fields:
        return ""
    params = {key: fields[key] for key in ("service", "scope") if key in fields}
    response = requests.get(fields["realm"], params=params, timeout=TIMEOUT)
    if response.status_code != 200:
        return ""
    body = response.json()
    return body.get("token") or body.get("access_token") or ""
