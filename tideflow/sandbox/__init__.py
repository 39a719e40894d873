"""A local emulated Kubernetes cluster: an API server built on kmock, controllers and a pod runner."""
