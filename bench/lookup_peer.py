"""The benchmark's two references.

**ceiling**: a minimal Django JSON view, through the same middleware: the most
any view can do on this server.

**peer**: the Omnidesk lookup as most teams would write it first: a DRF view,
ModelSerializers with nested serializers, ``prefetch_related`` for addresses,
custom fields and the timeline, DRF's JSON renderer. Same key check (one query,
hub.selectors), same answer shape, the same indexed filter on (brand, type, normalized
address), no cache, no request log.
"""

from __future__ import annotations

import zoneinfo

from django.db.models import Prefetch
from django.http import JsonResponse
from rest_framework import serializers
from rest_framework.exceptions import NotAuthenticated, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from customers.models import Activity, Address, Customer, CustomField
from customers.normalize import InvalidAddress, normalize_email, normalize_phone
from hub.net import client_ip
from hub.selectors import credential_authenticate


def ceiling(request):
    return JsonResponse({"status": "ok"})


class AddressSerializer(serializers.ModelSerializer):
    address = serializers.SerializerMethodField()
    type = serializers.CharField(source="kind")

    class Meta:
        model = Address
        fields = ["address", "type"]

    def get_address(self, obj):
        return obj.normalized if obj.kind in {"telephone", "whatsapp"} else obj.value.strip()


class CustomFieldSerializer(serializers.ModelSerializer):
    class Meta:
        model = CustomField
        fields = ["key", "value"]

    def to_representation(self, instance):
        return {instance.key: instance.value}


class TimelineSerializer(serializers.ModelSerializer):
    externalID = serializers.SerializerMethodField()  # noqa: N815
    lastUpdate = serializers.SerializerMethodField()  # noqa: N815
    type = serializers.SerializerMethodField()
    message = serializers.SerializerMethodField()
    url = serializers.CharField(source="link_url")

    class Meta:
        model = Activity
        fields = ["externalID", "lastUpdate", "type", "message", "source", "url"]

    def get_externalID(self, obj):  # noqa: N802
        return obj.external_id or str(obj.pk)

    def get_lastUpdate(self, obj):  # noqa: N802
        return obj.occurred_at.astimezone(self.context["tz"]).strftime("%Y-%m-%d %H:%M:%S")

    def get_type(self, obj):
        return obj.kind.lower()

    def get_message(self, obj):
        return ": ".join(part for part in (obj.header, obj.body) if part)


class OmnideskCustomerSerializer(serializers.ModelSerializer):
    addresses = AddressSerializer(many=True)
    customerFirstname = serializers.CharField(source="first_name")  # noqa: N815
    customerID = serializers.CharField(source="customer_id")  # noqa: N815
    customerLastname = serializers.CharField(source="last_name")  # noqa: N815
    customFields = CustomFieldSerializer(many=True, source="custom_fields")  # noqa: N815
    timeline = serializers.SerializerMethodField()

    class Meta:
        model = Customer
        fields = ["addresses", "customerFirstname", "customerID", "customerLastname", "customFields", "timeline"]

    def get_timeline(self, obj):
        return TimelineSerializer(obj.timeline[:20], many=True, context=self.context).data


class OmnideskPeerLookupApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request, brand_slug):
        auth = credential_authenticate(
            brand_slug=brand_slug,
            integration="omnidesk",
            secret=request.query_params.get("key"),
            client_ip=client_ip(request),
        )
        if auth.status == 401:
            raise NotAuthenticated()
        if auth.status:
            raise PermissionDenied()
        brand = auth.brand
        channel = request.query_params.get("channelAddressType")
        address = request.query_params.get("address", "")
        queryset = Customer.objects.filter(brand=brand)
        if "primaryID" in request.query_params:
            queryset = queryset.filter(customer_id=request.query_params["primaryID"])
        else:
            try:
                if channel == "email":
                    queryset = queryset.filter(
                        addresses__brand=brand, addresses__kind="email", addresses__normalized=normalize_email(address)
                    )
                elif channel == "phoneNumber":
                    value = normalize_phone(address, brand.default_region, strict=False)
                    queryset = queryset.filter(
                        addresses__brand=brand, addresses__kind="telephone", addresses__normalized=value
                    )
                else:
                    raise ValidationError({"channelAddressType": ["Unknown."]})
            except InvalidAddress as exc:
                raise ValidationError({"address": [str(exc)]}) from exc
        queryset = queryset.order_by("pk").prefetch_related(
            "addresses",
            "custom_fields",
            Prefetch("activities", queryset=Activity.objects.order_by("-occurred_at", "-pk"), to_attr="timeline"),
        )
        context = {"tz": zoneinfo.ZoneInfo(brand.time_zone), "request": request}
        return Response(OmnideskCustomerSerializer(queryset, many=True, context=context).data)
