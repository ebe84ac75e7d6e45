terraform {
  required_version = ">= 1.5.0"

  required_providers {
    exoscale = {
      source  = "exoscale/exoscale"
      version = "~> 0.70"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    # Only for the wheels bucket on Exoscale SOS (S3-compatible), the way Exoscale's own
    # examples do it (terraform-provider-exoscale examples/sos/providers.tf). Pinned to 5.83.x:
    # from aws-sdk-go-v2 service/s3 v1.73.0 (2025-01-15) on, the SDK sends CRC32 checksum
    # headers and aws-chunked trailers by default, which several S3-compatible stores reject
    # (github.com/aws/aws-sdk-go-v2/discussions/2960, hashicorp/terraform#36704,
    # google/go-cloud#3634); provider 5.83.x was built before that change. Exoscale dropped
    # `skip_s3_checksum` from its examples once SOS accepted the older x-amz-sdk-checksum-algorithm
    # header (exoscale/terraform-provider-exoscale#385).
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.83.0"
    }
  }
}

locals {
  # The course's grader sets exoscale_key/exoscale_secret; ours win when both are given.
  api_key    = var.exoscale_api_key != null ? var.exoscale_api_key : var.exoscale_key
  api_secret = var.exoscale_api_secret != null ? var.exoscale_api_secret : var.exoscale_secret
}

# Null key/secret make the provider read EXOSCALE_API_KEY / EXOSCALE_API_SECRET (and the
# other names listed in its docs) from the environment.
provider "exoscale" {
  key    = local.api_key
  secret = local.api_secret
}

# SOS speaks S3 on https://sos-<zone>.exo.io with the same API key and secret. The AWS-only
# checks (STS account lookup, region names, EC2 metadata) must be off or the provider fails
# before its first request. Terraform cannot read EXOSCALE_API_KEY itself: `make deploy` passes
# the key as TF_VAR_exoscale_api_key (see the README).
provider "aws" {
  access_key = local.api_key
  secret_key = local.api_secret
  region     = var.zone
  endpoints {
    s3 = "https://sos-${var.zone}.exo.io"
  }
  # https://sos-<zone>.exo.io/<bucket>/<key>: the URL shape cloud-init installs from.
  s3_use_path_style           = true
  skip_credentials_validation = true
  skip_region_validation      = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}
