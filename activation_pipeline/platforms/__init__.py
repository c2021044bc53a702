"""Platform registry: one line per platform. Adding a platform touches only this line and its package
(docs/adding_a_platform.md)."""

from activation_pipeline.platforms.batch import BATCH_SPEC
from activation_pipeline.platforms.connectif import CONNECTIF_SPEC
from activation_pipeline.platforms.declaration import PlatformSpec
from activation_pipeline.platforms.dotdigital import DOTDIGITAL_SPEC
from activation_pipeline.platforms.http_destination import HTTP_SPEC
from activation_pipeline.platforms.synerise import SYNERISE_SPEC
from activation_pipeline.platforms.yotpo import YOTPO_SPEC

PLATFORMS: dict[str, PlatformSpec] = {spec.name: spec for spec in (BATCH_SPEC, YOTPO_SPEC, DOTDIGITAL_SPEC, CONNECTIF_SPEC, SYNERISE_SPEC, HTTP_SPEC)}
