"""Settings of deployments (server/deployments); Settings inherits them."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

MiB = 1024 * 1024


class DeploymentSettings(BaseSettings):
    deploy_netlify_api_url: str = Field(
        "https://api.netlify.com", description="Netlify's API, for NetlifySite targets"
    )
    deploy_vercel_api_url: str = Field(
        "https://api.vercel.com", description="Vercel's API, for VercelProject targets"
    )
    deploy_s3_endpoint_url: str | None = Field(
        None,
        description="the S3 API S3Website targets publish to (unset: AWS); with it, sites are "
        "served at <deploy_s3_website_url or this URL>/<bucket>/<prefix>",
    )
    deploy_s3_website_url: str | None = Field(
        None, description="where the S3 API at deploy_s3_endpoint_url serves websites"
    )
    deploy_git_allow_local_remotes: bool = Field(
        False,
        description="let GitHubPages targets push to local paths and file:// remotes (tests "
        "and development only: a user could otherwise write into the server's file system)",
    )
    deploy_max_site_files: int = Field(5000, ge=1, description="most files one deployment sends")
    deploy_max_site_bytes: int = Field(
        200 * MiB, ge=1, description="largest total size of the files one deployment sends"
    )
    deploy_poll_seconds: float = Field(
        2.0, gt=0, description="between two looks at a Netlify or Vercel deployment not ready yet"
    )
    deploy_concurrency: int = Field(
        4, ge=1, description="deployments one server process publishes at once (more queue)"
    )
    deploy_heartbeat_seconds: float = Field(
        5.0, gt=0, description="how often a process publishing a deployment says it still is"
    )
    deploy_interrupted_after_seconds: float = Field(
        60.0,
        gt=0,
        description="a deployment in progress whose process has not said so for this long was "
        "interrupted (its process is gone): it is marked FAILED (DEPLOYMENT_INTERRUPTED)",
    )
