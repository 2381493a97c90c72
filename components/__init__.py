"""rayserve_pulumi: Ray Serve applications to production on AWS (EKS + KubeRay, EC2 VMs) or this machine.

The package reads like its architecture; each folder's `__init__` is its public face:

- `config`      the stack config (`rayserve:*` keys) and the Serve config, validated before anything is declared
- `kuberay`     cloud-neutral KubeRay pieces: operator, RayService, checkpoint storage
- `aws`         AWS pieces: EKS cluster, ECR image, IAM helpers, and the `eks` and `vm` platforms
- `local`       the `local` platform: a real Ray on this machine
- `node_agent`  the standard-library-only agent shipped onto VMs (also drives the local platform)
- `policy`      the policy pack's rules
- `serve_apps`  the bundled Ray Serve applications and their Serve config (baked into the image)
- `program`     the stack program: validate, then declare the platform the registry names

This module imports nothing, so Ray replicas and VM hosts can import the small parts they need.
"""

__all__ = ["__version__"]
__version__ = "0.2.0"
