variable "exoscale_api_key" {
  description = "Exoscale API key used by Terraform (Exoscale and SOS). `make deploy` sets it from EXOSCALE_API_KEY."
  type        = string
  default     = null
}

variable "exoscale_api_secret" {
  description = "Exoscale API secret used by Terraform. `make deploy` sets it from EXOSCALE_API_SECRET."
  type        = string
  default     = null
  sensitive   = true
}

# The course's grading robot passes these names; they are used when ours are not set.
variable "exoscale_key" {
  description = "Same as exoscale_api_key (the course's name for it)."
  type        = string
  default     = null
}

variable "exoscale_secret" {
  description = "Same as exoscale_api_secret (the course's name for it)."
  type        = string
  default     = null
  sensitive   = true
}

variable "zone" {
  description = "Exoscale zone for every resource."
  type        = string
  default     = "ch-gva-2"

  validation {
    condition     = can(regex("^[a-z]{2}-[a-z]{3}-[0-9]+$", var.zone))
    error_message = "zone must look like ch-gva-2, de-fra-1, at-vie-1, ..."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name; change it to run two stacks in one account."
  type        = string
  default     = "exo-autoscale"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.name_prefix))
    error_message = "name_prefix: lowercase letters, digits and dashes, at most 31 characters, starting with a letter."
  }
}

variable "template_name" {
  description = "Public Exoscale template for every instance (Debian: the cloud-init files use apt and systemd)."
  type        = string
  default     = "Linux Debian 12 (Bookworm) 64-bit"
}

variable "pool_instance_type" {
  description = "Instance type of the pool members that run slow-web."
  type        = string
  default     = "standard.micro"
}

variable "monitor_instance_type" {
  description = "Instance type of the monitor (Prometheus, Grafana, exo-sd, exo-scaler)."
  type        = string
  default     = "standard.small"
}

variable "pool_disk_size" {
  description = "Disk size (GiB) of each pool member; Exoscale's minimum is 10."
  type        = number
  default     = 10

  validation {
    condition     = var.pool_disk_size >= 10
    error_message = "pool_disk_size must be at least 10 GiB."
  }
}

variable "monitor_disk_size" {
  description = "Disk size (GiB) of the monitor; Exoscale's minimum is 10."
  type        = number
  default     = 10

  validation {
    condition     = var.monitor_disk_size >= 10
    error_message = "monitor_disk_size must be at least 10 GiB."
  }
}

variable "pool_initial_size" {
  description = "Members created by the first apply; afterwards exo-scaler owns the size (ignore_changes)."
  type        = number
  default     = 1
}

variable "pool_min_size" {
  description = "exo-scaler never scales below this."
  type        = number
  default     = 1

  validation {
    condition     = var.pool_min_size >= 1
    error_message = "pool_min_size must be at least 1 (Exoscale pools cannot be empty)."
  }
}

variable "pool_max_size" {
  description = "exo-scaler never scales above this. At most 8: one anti-affinity group holds 8 instances."
  type        = number
  default     = 4

  validation {
    condition     = var.pool_max_size >= 1 && var.pool_max_size <= 8
    error_message = "pool_max_size must be between 1 and 8 (the anti-affinity group limit)."
  }
}

variable "scaler_interval_seconds" {
  description = "exo-scaler's decision tick."
  type        = number
  default     = 60
}

variable "scaler_drain_seconds" {
  description = "Before evicting a member, exo-scaler asks its slow-web to drain (health 503, in-flight requests finish), waits this long, then evicts. 0: evict without draining."
  type        = number
  default     = 20

  validation {
    # 10 s: the NLB health check (every 5 s, 1 retry) needs that long to stop sending new
    # connections to a member whose /health turned 503.
    condition     = var.scaler_drain_seconds == 0 || (floor(var.scaler_drain_seconds) == var.scaler_drain_seconds && var.scaler_drain_seconds >= 10 && var.scaler_drain_seconds <= 300)
    error_message = "scaler_drain_seconds must be 0 (no drain) or a whole number from 10 to 300."
  }
}

variable "admin_cidrs" {
  description = "CIDRs allowed to reach SSH (22), Grafana (3000) and Prometheus (9090). Empty: those ports stay closed."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0" && c != "::/0"])
    error_message = "admin_cidrs must be valid CIDRs and never the whole Internet (0.0.0.0/0 or ::/0)."
  }
}

variable "ssh_public_key" {
  description = "Optional SSH public key authorized on every instance (null: no SSH key)."
  type        = string
  default     = null
}

variable "course_grader_access" {
  description = "Open Prometheus (9090) and Grafana (3000) on the monitor to the whole Internet, for the course's grading robot. Off by default; outputs warn loudly while it is on."
  type        = bool
  default     = false
}

variable "wheel_source" {
  description = "\"bucket\": Terraform uploads dist/*.whl of the checked-out versions to an SOS bucket and instances install them by URL, sha256 pinned. \"index\": released versions from package_index_url, exact versions and sha256 (from dist/)."
  type        = string
  default     = "bucket"

  validation {
    condition     = contains(["bucket", "index"], var.wheel_source)
    error_message = "wheel_source must be \"bucket\" or \"index\"."
  }
}

variable "package_index_url" {
  description = "PEP 503 index of our released wheels, for wheel_source = \"index\" (the only index asked for them)."
  type        = string
  default     = ""
}

variable "dependency_index_url" {
  description = "The one index third-party dependencies are installed from."
  type        = string
  default     = "https://pypi.org/simple/"
}

variable "wheel_dir" {
  description = "Folder holding the wheels built by `make wheels` (null: <repo>/dist)."
  type        = string
  default     = null
}

variable "prices_eur_per_hour" {
  description = "Override of the price table for the cost estimate output (EUR per hour). null: prices.json beside this file, the one table exo-lab's run cost reads too. Estimates: check https://www.exoscale.com/pricing/."
  type        = map(number)
  default     = null

  validation {
    # A conditional, not ||: Terraform 1.11 evaluates both sides of || and keys(null) fails.
    condition     = var.prices_eur_per_hour == null ? true : (contains(keys(var.prices_eur_per_hour), "nlb") && contains(keys(var.prices_eur_per_hour), "disk_gib"))
    error_message = "prices_eur_per_hour must contain the keys \"nlb\" and \"disk_gib\" and one key per instance type used."
  }
}

variable "budget_eur" {
  description = "Budget used by the cost output to say how many hours the stack may run at its maximum size."
  type        = number
  default     = 20
}

variable "iam_scope_by_id" {
  description = "Scope the IAM roles' rules to this pool and NLB (parameters.id, parameters.manager_id, parameters.entity). false: operation-only rules, the WEAKER fallback for an account where Exoscale does not bind those parameters; use it only when `make deploy`'s key check names it (docs/security.md)."
  type        = bool
  default     = true
}
