output "pool_user_data" {
  description = "Pool members' user-data: base64 of the gzip-compressed cloud-config (holds the admin token)."
  value       = local.pool_user_data
  sensitive   = true

  precondition {
    condition     = length(local.wheels_missing) == 0
    error_message = "${var.wheel_dir} lacks the wheels of the checked-out packages: ${join(", ", local.wheels_missing)}. Run `make wheels` (it rebuilds dist/ from this tree)."
  }

  precondition {
    condition     = local.bucket_mode ? var.wheel_base_url != "" : var.package_index_url != ""
    error_message = "wheel_source = \"bucket\" needs wheel_base_url; wheel_source = \"index\" needs package_index_url."
  }

  # Checked at plan time, before the admin token exists.
  precondition {
    condition     = local.bound_bytes.pool < var.user_data_limit
    error_message = "The pool's user-data could reach ${local.bound_bytes.pool} encoded bytes; Exoscale accepts less than ${var.user_data_limit}. ${local.oversize_hint}"
  }
}

output "monitor_user_data" {
  description = "The monitor's user-data: base64 of the gzip-compressed cloud-config (holds secrets)."
  value       = local.monitor_user_data
  sensitive   = true

  precondition {
    condition     = length(local.wheels_missing) == 0
    error_message = "${var.wheel_dir} lacks the wheels of the checked-out packages: ${join(", ", local.wheels_missing)}. Run `make wheels` (it rebuilds dist/ from this tree)."
  }

  precondition {
    condition     = local.member_cores > 0
    error_message = "pool_instance_type ${var.pool_instance_type}: its vCPU count is unknown (exo-scaler's --member-cores). Known: ${join(", ", keys(local.standard_vcpus))}; add another type to standard_vcpus in modules/cloud-init/main.tf from https://www.exoscale.com/pricing/."
  }

  # Checked at plan time, before the API key or the pool exist.
  precondition {
    condition     = local.bound_bytes.monitor < var.user_data_limit
    error_message = "The monitor's user-data could reach ${local.bound_bytes.monitor} encoded bytes; Exoscale accepts less than ${var.user_data_limit}. ${local.oversize_hint}"
  }
}

output "pool_cloud_config" {
  description = "The pool's cloud-config as text (for validation; holds the admin token)."
  value       = local.pool_cloud_config_for.real
  sensitive   = true
}

output "monitor_cloud_config" {
  description = "The monitor's cloud-config as text (for validation; holds secrets)."
  value       = local.monitor_cloud_config_for.real
  sensitive   = true
}

output "user_data_bytes" {
  description = "Encoded sizes: each document's plan-time upper bound and exact size."
  value = {
    limit         = var.user_data_limit
    pool_bound    = local.bound_bytes.pool
    pool          = nonsensitive(length(local.pool_user_data))
    monitor_bound = local.bound_bytes.monitor
    monitor       = nonsensitive(length(local.monitor_user_data))
  }
}

output "scaler_url" {
  description = "exo-scaler's base URL on the monitor."
  value       = local.scaler_url
}

output "wheels" {
  description = "The wheel of each checked-out package: file name, bucket object key (<sha256>/<name>), path in wheel_dir, sha256 and version (what the root module uploads and instances install)."
  value = {
    for dist, name in local.wheel_names : dist => {
      name    = name
      key     = local.wheel_keys[dist]
      path    = "${var.wheel_dir}/${name}"
      sha256  = local.wheel_sha256[dist]
      version = local.versions[dist]
    }
  }
}
