"""The SSRF matrix every outbound path is tested with: each spelling of this machine the network
stack accepts, internal ranges (private, shared, link-local and metadata, reserved, multicast), and
IPv6 forms that carry an internal IPv4 address."""

from __future__ import annotations

from urllib.parse import quote


def loopback_spellings(port: int) -> list[str]:
    """Every way of writing 127.0.0.1 (or this machine) that the network stack accepts."""
    hosts = [
        "2130706433",
        "0x7f000001",
        "0x7f.1",
        "127.1",
        "127.0.1",
        "0",
        "0.0.0.0",
        "0177.0.0.1",
        "017700000001",
        "127.0.0.1.",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[0:0:0:0:0:ffff:7f00:1]",
        "localhost",
        "LOCALHOST",
        "localhost.",
        "x.localhost",
        quote("127.0.0.1", safe=""),
        "%31%32%37%2e%30%2e%30%2e%31",
        "%6c%6f%63%61%6c%68%6f%73%74",
        "\uff11\uff12\uff17.0.0.1",
        "127.0.0.2",
        "127.255.255.254",
    ]
    return [f"https://{host}:{port}/fhir" for host in hosts] + [f"http://{host}:{port}/fhir" for host in hosts]


INTERNAL = [
    "https://100.100.100.200/fhir",
    "https://2852039166/fhir",
    "https://169.254.169.254/fhir",
    "https://0xa9fea9fe/fhir",
    "https://10.0.0.1/fhir",
    "https://012.0.0.1/fhir",
    "https://192.168.1.1/fhir",
    "https://172.16.0.1/fhir",
    "https://[fd00::1]/fhir",
    "https://[fe80::1]/fhir",
    "https://[::ffff:169.254.169.254]/fhir",
    "https://224.0.0.1/fhir",
    "https://240.0.0.1/fhir",
    "https://100.64.0.1/fhir",
    "https://192.0.2.1/fhir",
    "https://198.18.0.1/fhir",
]


EMBEDDED_IPV4 = [
    "https://[64:ff9b::7f00:1]/fhir",  # NAT64 well-known prefix -> 127.0.0.1
    "https://[64:ff9b::a9fe:a9fe]/fhir",  # -> 169.254.169.254
    "https://[64:ff9b::10.0.0.1]/fhir",
    "https://[64:ff9b:1::7f00:1]/fhir",  # local-use NAT64
    "https://[64:ff9b:1:7f00:1::]/fhir",
    "https://[2002:7f00:1::1]/fhir",  # 6to4 -> 127.0.0.1
    "https://[2002:a9fe:a9fe::1]/fhir",
    "https://[2002:c0a8:101::1]/fhir",  # -> 192.168.1.1
    "https://[::127.0.0.1]/fhir",  # IPv4-compatible
    "https://[::a9fe:a9fe]/fhir",
    "https://[::ffff:0:127.0.0.1]/fhir",  # IPv4-translated
    "https://[::ffff:0:a00:1]/fhir",
    "https://[::ffff:a9fe:a9fe]/fhir",  # IPv4-mapped
    "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/fhir",  # Teredo, client 127.0.0.1
    "https://[64:ff9b::c0a8:101]/fhir",
    "https://[64:ff9b::6440:1]/fhir",  # -> 100.64.0.1
]
