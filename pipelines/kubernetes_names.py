"""What Kubernetes accepts as a label, a toleration, a resource or a claim name.

The steps' node selector, tolerations, accelerator resource and volume claims are copied
into each GPU step's pod by the KFP driver unchecked; Kubernetes validates them only when
Argo creates the pod, minutes or hours into a run (a node selector or toleration it
refuses fails the step), or never (a pod naming a claim that cannot exist waits,
Pending, for ever). So `compile`, `submit` and `schedule` check them first, with
Kubernetes' own syntax (apimachinery `pkg/util/validation`: `IsQualifiedName`,
`IsValidLabelValue`, `IsDNS1123Subdomain`; core `ValidatePodSpec` validates the node
selector as labels, `ValidateTolerations` the key as a label name and an `Equal` value as
a label value). See docs/kfp-backend.md, rule `pod-fields`.
"""

import re

NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")  # a label name or value
SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
NAME_CHARS, SUBDOMAIN_CHARS = 63, 253


def label_key_problem(key: str) -> str:
    """Why `key` is not a label key (`[prefix/]name`, as `IsQualifiedName`), or ''."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or subdomain_problem(prefix)):
        return "its prefix before '/' must be a lower-case DNS name like example.com"
    if len(name) > NAME_CHARS or not NAME.fullmatch(name):
        return (
            f"the name must be 1-{NAME_CHARS} letters, digits, '-', '_' or '.', starting "
            "and ending with a letter or digit"
        )
    return ""


def label_value_problem(value: str) -> str:
    """Why `value` is not a label value (empty, or as a label name), or ''."""
    if value and (len(value) > NAME_CHARS or not NAME.fullmatch(value)):
        return (
            f"a value is at most {NAME_CHARS} letters, digits, '-', '_' or '.', starting and "
            "ending with a letter or digit"
        )
    return ""


def subdomain_problem(name: str) -> str:
    """Why `name` is not a DNS-1123 subdomain (the name of most objects), or ''."""
    if len(name) > SUBDOMAIN_CHARS or not SUBDOMAIN.fullmatch(name):
        return (
            "a name is lower-case letters, digits, '-' and '.', starting and ending with a "
            "letter or digit"
        )
    return ""


def cluster_problems(
    node_selector: tuple[tuple[str, str], ...],
    tolerations: tuple,
    gpu_type: str,
    volumes: tuple[tuple[str, str], ...],
) -> list[str]:
    """What Kubernetes would refuse (or wait on for ever) of the steps' pod settings."""
    found = [
        f"--node-selector {key}={value}: {why}"
        for key, value in node_selector
        if (why := label_key_problem(key) or label_value_problem(value))
    ]
    found += [
        f"--toleration {t.key}{'=' + t.value if t.value else ''}:{t.effect}: {why}"
        for t in tolerations
        if (why := label_key_problem(t.key) or label_value_problem(t.value))
    ]
    if "/" not in gpu_type or label_key_problem(gpu_type):
        found.append(
            f"--gpu-type {gpu_type}: give the device plugin's resource name, e.g. "
            "nvidia.com/gpu or amd.com/gpu"
        )
    for claim, mount_path in volumes:
        if why := subdomain_problem(claim):
            found.append(f"--pvc {claim}={mount_path}: no claim can be named {claim!r}: {why}")
        if not mount_path.startswith("/"):
            found.append(f"--pvc {claim}={mount_path}: give an absolute mount path, e.g. /mnt/data")
    return found
