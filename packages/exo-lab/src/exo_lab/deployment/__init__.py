"""A deployment as the client gets it: its outputs, `up`/`down` (a lab that stands in for one),
`verify` (is it what Terraform said), and the load test with the lab's report (`run --target`).
"""
