"""forge.artifacts.v1.ArtifactService: versioned artifacts, their blobs and chat extraction."""
