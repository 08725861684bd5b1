"""PreviewEnvironment (`devops.orima.com/v1`): one namespace per pull request, served over TLS."""
