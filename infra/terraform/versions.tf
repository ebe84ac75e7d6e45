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
  }
}

# Null key/secret make the provider read EXOSCALE_API_KEY / EXOSCALE_API_SECRET (and the
# other names listed in its docs) from the environment.
provider "exoscale" {
  key    = var.exoscale_api_key
  secret = var.exoscale_api_secret
}
