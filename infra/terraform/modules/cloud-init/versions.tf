# Provider-free on purpose: this module only renders text (templatefile, yamlencode,
# base64gzip), so it can be applied offline, in tests, with nothing to download.
terraform {
  required_version = ">= 1.5.0"
}
