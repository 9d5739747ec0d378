"""The collector: workflow specs -> probe runner (httpx) -> OpenTelemetry spans.

Imports only ``store`` among Wardwatch's packages (for the span schema).
"""

from collector.auth import AuthError, TokenCache
from collector.client import ClientFactory, ProbeClients, make_client
from collector.config import (
    BUILTIN_VARIABLES,
    PATIENT_VARIABLES,
    AssertionConfig,
    AuthConfig,
    BasicAuthConfig,
    BearerAuthConfig,
    ConfigProblem,
    NoAuthConfig,
    OAuth2ClientCredentialsConfig,
    SiteConfig,
    SmartBackendServicesConfig,
    StepConfig,
    TargetConfig,
    TestPatientConfig,
    TlsConfig,
    WorkflowConfig,
    check_references,
    requests_per_min,
    requests_per_run,
)
from collector.errors import ErrorType
from collector.metrics import ProbeMetrics, bucket_boundaries_s
from collector.probe import Job, Probe, UnknownNameError
from collector.schedule import StateFile
from collector.runner import RunResult, StepResult, run_workflow
from collector.telemetry import PROBE_SERVICE_NAME, tracer_provider_for_site
from collector.timing import RequestTiming

__all__ = [
    "BUILTIN_VARIABLES",
    "PATIENT_VARIABLES",
    "PROBE_SERVICE_NAME",
    "AssertionConfig",
    "AuthConfig",
    "AuthError",
    "BasicAuthConfig",
    "BearerAuthConfig",
    "ClientFactory",
    "ConfigProblem",
    "ErrorType",
    "Job",
    "NoAuthConfig",
    "OAuth2ClientCredentialsConfig",
    "Probe",
    "ProbeClients",
    "ProbeMetrics",
    "RequestTiming",
    "RunResult",
    "SiteConfig",
    "SmartBackendServicesConfig",
    "StateFile",
    "StepConfig",
    "StepResult",
    "TargetConfig",
    "TestPatientConfig",
    "TlsConfig",
    "TokenCache",
    "UnknownNameError",
    "WorkflowConfig",
    "bucket_boundaries_s",
    "check_references",
    "make_client",
    "requests_per_min",
    "requests_per_run",
    "run_workflow",
    "tracer_provider_for_site",
]
