"""Django admin for the validator's raw tables (the dashboard's pages are the operator's view)."""

from __future__ import annotations

from django.contrib import admin

from validator.models import (
    BlacklistEntry,
    Incident,
    JobEvent,
    MinerRecord,
    PublishedScores,
    ReceiptRecord,
    RoutingDecision,
    ValidatorJob,
)

admin.site.site_header = "Gridmarket validator"
admin.site.site_title = "Gridmarket validator admin"
admin.site.index_title = "Raw tables"
admin.site.site_url = "/"  # "view site": the dashboard


@admin.register(ValidatorJob)
class ValidatorJobAdmin(admin.ModelAdmin):
    list_display = ["job_id", "status", "attempt", "miner_hotkey", "executor_class", "created_at", "updated_at"]
    list_filter = ["status", "executor_class", "created_at"]
    search_fields = ["job_id", "miner_hotkey", "client_hotkey"]
    date_hierarchy = "created_at"


@admin.register(JobEvent)
class JobEventAdmin(admin.ModelAdmin):
    list_display = ["id", "job_id", "status", "attempt", "miner_hotkey", "at"]
    list_filter = ["status"]
    search_fields = ["job_id", "miner_hotkey"]


@admin.register(MinerRecord)
class MinerRecordAdmin(admin.ModelAdmin):
    list_display = ["hotkey", "address", "connected", "trusted", "first_seen", "last_seen"]
    list_filter = ["connected", "trusted"]
    search_fields = ["hotkey", "address"]


@admin.register(RoutingDecision)
class RoutingDecisionAdmin(admin.ModelAdmin):
    list_display = ["id", "job_id", "attempt", "executor_class", "chosen", "reason", "at"]
    list_filter = ["reason", "executor_class"]
    search_fields = ["job_id", "chosen"]


@admin.register(ReceiptRecord)
class ReceiptRecordAdmin(admin.ModelAdmin):
    list_display = ["id", "job_id", "attempt", "kind", "miner_hotkey", "executor_class", "status", "at"]
    list_filter = ["kind", "status", "executor_class"]
    search_fields = ["job_id", "miner_hotkey", "validator_hotkey"]


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "miner_hotkey", "job_id", "at", "message"]
    list_filter = ["kind"]
    search_fields = ["miner_hotkey", "job_id", "message"]


@admin.register(BlacklistEntry)
class BlacklistEntryAdmin(admin.ModelAdmin):
    list_display = ["id", "miner_hotkey", "reason", "created_by", "created_at", "until", "lifted_by", "lifted_at"]
    list_filter = ["created_by", "lifted_by"]
    search_fields = ["miner_hotkey", "reason"]
    raw_id_fields = ["incident"]


@admin.register(PublishedScores)
class PublishedScoresAdmin(admin.ModelAdmin):
    list_display = ["id", "at", "sent"]
    list_filter = ["sent"]
