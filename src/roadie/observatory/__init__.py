"""Observatory (workflow.seventh-horizon.io/v1alpha1): DAG workflows of container tasks, run once or on a schedule."""
