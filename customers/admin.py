from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils.html import format_html_join

from hub import scoping
from hub.admin_panels import customer_panels
from hub.tenancy import BrandScopedAdmin, BrandScopedInline

from . import services
from .models import Activity, Address, Customer, CustomField
from .normalize import InvalidAddress, normalize_address, normalize_phone


class AddressFormSet(forms.BaseInlineFormSet):
    def get_form_kwargs(self, index):
        # On the add page the customer is not saved yet, so the forms get it from here.
        return {**super().get_form_kwargs(index), "parent": self.instance}


class AddressForm(forms.ModelForm):
    """Normalized with the brand's default region as the row is validated: an invalid
    phone number or e-mail address is a field error, never stored (issue 2)."""

    class Meta:
        model = Address
        fields = ["kind", "value", "comment", "position"]

    def __init__(self, *args, parent: Customer | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.parent = parent

    def clean(self):
        cleaned = super().clean()
        customer = self.parent if self.parent is not None else getattr(self.instance, "customer", None)
        brand = customer.brand if customer is not None and customer.brand_id else None
        kind, value = cleaned.get("kind"), cleaned.get("value")
        if brand is not None and kind and value:
            try:
                self.instance.normalized = normalize_address(kind, value, brand.default_region)
            except InvalidAddress as exc:
                raise ValidationError({"value": str(exc)}) from exc
            self.instance.brand = brand
        return cleaned


class AddressInline(BrandScopedInline, admin.TabularInline):
    model = Address
    form = AddressForm
    formset = AddressFormSet
    extra = 0
    fields = ["kind", "value", "comment", "position"]


class CustomFieldInline(BrandScopedInline, admin.TabularInline):
    model = CustomField
    extra = 0
    fields = ["key", "value", "position"]


class ActivityInline(BrandScopedInline, admin.StackedInline):
    model = Activity
    extra = 0
    show_change_link = True
    classes = ["collapse"]
    fields = [
        ("kind", "occurred_at", "markdown"),
        ("header", "custom_header", "custom_description"),
        "body",
        ("source", "external_id", "link_url"),
        ("associated_user", "assigned_user", "status", "done", "due_date"),
        ("from_number", "to_number", "duration_ms", "start_time"),
        ("created_date", "priority", "pipeline", "pipeline_stage"),
        ("close_date", "currency", "amount"),
        ("start_date", "end_date", "all_day", "venue"),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-occurred_at")


class CustomerForm(forms.ModelForm):
    class Meta:
        model = Customer
        fields = ["brand", "customer_id", *services.CUSTOMER_FIELDS]

    def clean(self):
        """The brand is read-only on the change page, so Django skips the (brand, customer_id) constraint there."""
        cleaned = super().clean()
        brand = cleaned.get("brand") or (self.instance.brand if self.instance.brand_id else None)
        customer_id = cleaned.get("customer_id")
        if brand is not None and customer_id:
            clash = Customer.objects.filter(brand=brand, customer_id=customer_id.strip())
            if self.instance.pk:
                clash = clash.exclude(pk=self.instance.pk)
            if clash.exists():
                self.add_error("customer_id", f"A customer with ID {customer_id!r} exists in this brand.")
        return cleaned


def _kept_forms(formset) -> list:
    """The inline rows that stay after saving: filled in, not marked for deletion, in position order."""
    deleted = set(map(id, formset.deleted_forms))
    kept = [
        form
        for form in formset.forms
        if id(form) not in deleted and form.cleaned_data and (form.instance.pk or form.has_changed())
    ]
    return sorted(kept, key=lambda form: form.cleaned_data.get("position") or 0)


@admin.register(Customer)
class CustomerAdmin(BrandScopedAdmin):
    """Customers with their addresses, custom fields and timeline.

    Saving goes through customers.services (issue 2): the customer, its
    addresses and custom fields are written by ``customer_create`` /
    ``customer_update``, which normalize addresses, rebuild the stored lookup
    answers and emit customer.created / customer.updated (only when something
    changed) in the admin's transaction.
    """

    form = CustomerForm
    list_display = ["customer_id", "first_name", "last_name", "company_name", "brand", "updated_at"]
    list_filter = ["brand"]
    list_select_related = ["brand"]
    search_fields = ["customer_id", "first_name", "last_name", "display_name", "company_name", "addresses__normalized"]
    date_hierarchy = "created_at"
    inlines = [AddressInline, CustomFieldInline, ActivityInline]
    readonly_fields = ["created_at", "updated_at", "last_contact_at"]
    fieldsets = [
        (None, {"fields": ["brand", "customer_id"]}),
        ("Name", {"fields": [("first_name", "last_name"), "display_name"]}),
        ("Company", {"fields": [("company_name", "job_title")]}),
        ("Profile", {"fields": ["summary", "time_zone", "avatar_url", "cover_photo_url", "more_info_url"]}),
        ("History", {"fields": [("created_at", "updated_at", "last_contact_at")]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "brand", "logs_panel"] if obj is not None else self.readonly_fields

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        return [*fieldsets, ("Logs", {"fields": ["logs_panel"]})] if obj is not None else fieldsets

    @admin.display(description="logs of this customer")
    def logs_panel(self, obj):
        """Read-only links to the customer's inbound calls, events and deliveries,
        contributed by synclog (hub.admin_panels)."""
        return format_html_join("", "{}", ((panel(obj),) for panel in customer_panels))

    def get_search_results(self, request, queryset, search_term):
        """A phone number typed in any format finds the E.164 row."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term and sum(ch.isdigit() for ch in term) >= 6:
            numbers = set()
            brands = scoping.brands(user=request.user, action=scoping.VIEW)
            for region in brands.values_list("default_region", flat=True).distinct():
                try:
                    numbers.add(normalize_phone(term, region, strict=False))
                except InvalidAddress:
                    continue
            if numbers:
                results = results | queryset.filter(Q(addresses__normalized__in=numbers))
                may_have_duplicates = True
        return results, may_have_duplicates

    def save_model(self, request, obj, form, change):
        """Nothing yet: save_related writes the customer and its inlines through the services."""

    def save_related(self, request, form, formsets, change):
        obj = form.instance
        by_model = {formset.model: formset for formset in formsets}
        addresses = custom_fields = None
        if Address in by_model:
            by_model[Address].save(commit=False)  # records what changed for the admin log; nothing is written
            addresses = [
                {
                    "type": f.cleaned_data["kind"],
                    "address": f.cleaned_data["value"],
                    "comment": f.cleaned_data["comment"],
                }
                for f in _kept_forms(by_model[Address])
            ]
        if CustomField in by_model:
            by_model[CustomField].save(commit=False)
            custom_fields = [
                {"key": f.cleaned_data["key"], "value": f.cleaned_data["value"]}
                for f in _kept_forms(by_model[CustomField])
            ]
        fields = {name: form.cleaned_data[name] for name in services.CUSTOMER_FIELDS if name in form.cleaned_data}
        if "customer_id" in form.cleaned_data:
            fields["customer_id"] = form.cleaned_data["customer_id"].strip()
        if not change:
            customer = services.customer_create(
                brand=obj.brand, addresses=addresses or (), custom_fields=custom_fields or (), **fields
            )
            obj.pk = customer.pk
            obj._state.adding = False
            obj._state.db = customer._state.db
        activities = by_model.get(Activity)
        if activities is not None:
            self.save_formset(request, form, activities, change=change)
        if change:
            services.customer_update(customer=obj, addresses=addresses, custom_fields=custom_fields, **fields)
        elif activities is not None and (activities.new_objects or activities.changed_objects):
            services.customers_refresh(customer_ids=[obj.pk])

    def delete_model(self, request, obj):
        services.customer_delete(customer=obj)

    def delete_queryset(self, request, queryset):
        for customer in queryset:
            services.customer_delete(customer=customer)


@admin.register(Activity)
class ActivityAdmin(BrandScopedAdmin):
    list_display = ["occurred_at", "kind", "customer", "header", "source"]
    list_filter = ["kind", "source"]
    list_select_related = ["customer"]
    search_fields = ["customer__customer_id", "header", "body", "external_id"]
    date_hierarchy = "occurred_at"
    raw_id_fields = ["customer"]

    def get_model_perms(self, request):
        return {}  # reached from the customer page; kept out of the index

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services.customers_refresh(customer_ids=[obj.customer_id])

    def delete_model(self, request, obj):
        customer_id = obj.customer_id
        super().delete_model(request, obj)
        services.customers_refresh(customer_ids=[customer_id])
