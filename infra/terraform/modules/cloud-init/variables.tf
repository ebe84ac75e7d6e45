variable "zone" {
  description = "Exoscale zone exo-sd and exo-scaler talk to."
  type        = string
}

variable "pool_instance_type" {
  description = "Instance type of the pool members (Exoscale's standard family): its vCPUs are exo-scaler's --member-cores."
  type        = string
}

variable "pool_min_size" {
  description = "exo-scaler --min."
  type        = number
}

variable "pool_max_size" {
  description = "exo-scaler --max."
  type        = number
}

variable "scaler_interval" {
  description = "exo-scaler --interval (seconds)."
  type        = number
  default     = 60
}

variable "scaler_listen_host" {
  description = "Address exo-scaler binds on the monitor. Loopback: only Grafana and Prometheus on the same host call it."
  type        = string
  default     = "127.0.0.1"
}

variable "scaler_port" {
  description = "exo-scaler's port (webhook, /status, /metrics)."
  type        = number
  default     = 8090
}

variable "slow_web_work_ms" {
  description = "CPU milliseconds slow-web burns per request by default."
  type        = number
  default     = 100
}

variable "scaler_drain_seconds" {
  description = "exo-scaler --drain-seconds: drain a leaving member, wait this long, then evict (0: evict at once). Also slow-web's --drain-timeout when > 0."
  type        = number
  default     = 20

  validation {
    condition     = var.scaler_drain_seconds == 0 || (floor(var.scaler_drain_seconds) == var.scaler_drain_seconds && var.scaler_drain_seconds >= 10 && var.scaler_drain_seconds <= 300)
    error_message = "scaler_drain_seconds must be 0 (no drain) or a whole number from 10 (the NLB needs up to 10 s to stop sending a draining member new connections) to 300."
  }
}

variable "wheel_source" {
  description = "\"bucket\": pip installs our wheels by URL from wheel_base_url (the root module's SOS bucket); \"index\": exact released versions from package_index_url. Both pin each wheel's sha256 from wheel_dir."
  type        = string
  default     = "bucket"

  validation {
    condition     = contains(["bucket", "index"], var.wheel_source)
    error_message = "wheel_source must be \"bucket\" or \"index\"."
  }
}

variable "wheel_base_url" {
  description = "Where the wheels are, for wheel_source = \"bucket\": <wheel_base_url>/<wheel file name> (e.g. https://sos-ch-gva-2.exo.io/<bucket>)."
  type        = string
  default     = ""

  validation {
    condition     = var.wheel_base_url == "" || (length(var.wheel_base_url) <= 128 && can(regex("^https?://[^\\s'\"#?]+[^/]$", var.wheel_base_url)))
    error_message = "wheel_base_url must be an http(s) URL of at most 128 characters (the size bound assumes it) without spaces, quotes, query or trailing slash."
  }
}

variable "package_index_url" {
  description = "PEP 503 index serving our released wheels when wheel_source = \"index\"; the only index pip asks for them."
  type        = string
  default     = ""

  validation {
    condition     = var.package_index_url == "" || can(regex("^https?://[^\\s'\"]+$", var.package_index_url))
    error_message = "package_index_url must be an http(s) URL without spaces or quotes."
  }
}

variable "dependency_index_url" {
  description = "The one index third-party dependencies come from (--index-url, never an extra index)."
  type        = string
  default     = "https://pypi.org/simple/"

  validation {
    condition     = can(regex("^https?://[^\\s'\"]+$", var.dependency_index_url))
    error_message = "dependency_index_url must be an http(s) URL without spaces or quotes."
  }
}

variable "packages_dir" {
  description = "The repository's packages/ folder, whose pyproject.toml files name the versions to install (null: found relative to this module)."
  type        = string
  default     = null
}

variable "wheel_dir" {
  description = "Folder with the wheels built by `make wheels`."
  type        = string
}

variable "grafana_provisioning_dir" {
  description = "The repository's grafana-provisioning/ folder (null: found relative to this module)."
  type        = string
  default     = null
}

variable "user_data_limit" {
  description = "The provider rejects user-data whose base64 form is this long or longer."
  type        = number
  default     = 32768
}

variable "monitor_runtime" {
  description = "Values known only once other resources exist; each is bounded by local.runtime_max_length."
  sensitive   = true
  type = object({
    pool_id                = string
    nlb_id                 = string
    sd_api_key             = string
    sd_api_secret          = string
    scaler_api_key         = string
    scaler_api_secret      = string
    scaler_token           = string
    grafana_admin_password = string
  })

  validation {
    condition     = can(regex("^[^\\s\"'\\\\]{12,128}$", var.monitor_runtime.grafana_admin_password))
    error_message = "grafana_admin_password: 12 to 128 characters, no whitespace, quotes or backslashes."
  }

  validation {
    condition = (
      length(var.monitor_runtime.pool_id) <= 64 &&
      length(var.monitor_runtime.nlb_id) <= 64 &&
      length(var.monitor_runtime.sd_api_key) <= 64 &&
      length(var.monitor_runtime.sd_api_secret) <= 128 &&
      length(var.monitor_runtime.scaler_api_key) <= 64 &&
      length(var.monitor_runtime.scaler_api_secret) <= 128
    )
    error_message = "pool_id, nlb_id or an API key or secret exceeds the length the user-data size bound assumes."
  }

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{24,128}$", var.monitor_runtime.scaler_token))
    error_message = "scaler_token: 24 to 128 characters of [A-Za-z0-9_-]."
  }
}

variable "member_admin_token" {
  description = "Bearer token of slow-web's admin API on every pool member; exo-scaler sends it with its drain requests."
  type        = string
  sensitive   = true

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{24,128}$", var.member_admin_token))
    error_message = "member_admin_token: 24 to 128 characters of [A-Za-z0-9_-]."
  }
}
