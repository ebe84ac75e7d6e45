output "pool_user_data" {
  description = "Pool members' user-data: base64 of the gzip-compressed cloud-config (holds the admin token)."
  value       = local.pool_user_data
  sensitive   = true

  precondition {
    condition     = !local.embedded || length(local.wheels_missing) == 0
    error_message = "wheel_source = \"embedded\" needs exactly one wheel per package in ${var.wheel_dir}; missing or ambiguous: ${join(", ", local.wheels_missing)}. Run `make wheels` (it empties dist/ first)."
  }

  precondition {
    condition     = local.embedded || var.package_index_url != ""
    error_message = "wheel_source = \"index\" needs package_index_url."
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
    condition     = !local.embedded || length(local.wheels_missing) == 0
    error_message = "wheel_source = \"embedded\" needs exactly one wheel per package in ${var.wheel_dir}; missing or ambiguous: ${join(", ", local.wheels_missing)}. Run `make wheels` (it empties dist/ first)."
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

output "embedded_wheels" {
  description = "Wheel files embedded in the user-data (empty with wheel_source = \"index\")."
  value       = local.embedded ? sort([for d, w in local.wheel_files : w.name]) : []
}
