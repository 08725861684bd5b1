"""Building Roadie's image without a container engine (`make image`); see image/README.md."""
