"""Deploy targets: one module per kind of hosting, all implementing `base.DeployTarget`."""
