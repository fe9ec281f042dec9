"""Settings of the Docker engines sandboxes run on (FORGE_DOCKER_HOSTS); Settings inherits
them. One engine (the default) is `docker_host`, or DOCKER_HOST, or the local socket."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode

from server.config_parsing import comma_list

TLS_FILES = ("ca.pem", "cert.pem", "key.pem")
"""What a TLS directory holds, as Docker names them (DOCKER_CERT_PATH)."""


class DockerHostAddress(BaseModel):
    """One Docker engine: a unix socket, or TCP with mutual TLS."""

    url: str = Field(min_length=1, max_length=500)
    tls_dir: Path | None = Field(
        None, description="directory with ca.pem, cert.pem and key.pem (Docker's names)"
    )

    @property
    def uses_tcp(self) -> bool:
        return self.url.startswith(("tcp://", "https://"))

    @property
    def display(self) -> str:
        """The address for logs and errors (no credentials ever appear in one)."""
        return self.url


class DockerSettings(BaseSettings):
    docker_hosts: Annotated[list[DockerHostAddress], NoDecode] = Field(
        default_factory=list,
        description="Docker engines sandboxes are placed on (by free memory and CPU): "
        "comma-separated URLs (unix:///path or tcp://host:2376), or a JSON list of URLs or "
        'of {"url": ..., "tls_dir": ...}; TCP engines need TLS (tls_dir, or docker_tls_dir); '
        "empty: the one engine of docker_host",
    )
    docker_tls_dir: Path | None = Field(
        None,
        description="TLS directory (ca.pem, cert.pem, key.pem) of docker_hosts' TCP engines "
        "that name none of their own",
    )
    sandbox_host_down_after_seconds: float = Field(
        30.0,
        gt=0,
        description="a Docker engine that has not answered for this long is down: its "
        "sandboxes are reported lost and new ones go to the other engines",
    )

    @field_validator("docker_hosts", mode="before")
    @classmethod
    def _parse_hosts(cls, value: object) -> object:
        value = comma_list(value)
        if isinstance(value, list):
            return [{"url": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _tcp_needs_tls(self) -> DockerSettings:
        urls = [host.url for host in self.docker_hosts]
        if len(set(urls)) != len(urls):
            raise ValueError("docker_hosts names an engine twice")
        for host in self.docker_hosts:
            if not host.url.startswith(("unix://", "tcp://", "https://")):
                raise ValueError(f"docker_hosts: {host.url!r} is neither unix:// nor tcp://")
            if host.uses_tcp and host.tls_dir is None and self.docker_tls_dir is None:
                raise ValueError(
                    f"docker_hosts: {host.url} is TCP without TLS (a root shell for anyone "
                    "who reaches it); give it a tls_dir, or set docker_tls_dir"
                )
        return self

    def tls_dir_of(self, host: DockerHostAddress) -> Path | None:
        """The TLS directory a TCP engine is reached with (None: a unix socket)."""
        if not host.uses_tcp:
            return None
        return host.tls_dir or self.docker_tls_dir
